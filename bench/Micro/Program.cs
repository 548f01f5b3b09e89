// Micro-benchmarks of the gateway's per-request hot path, and a harness for the metering writer. Both use the database
// named by ConnectionStrings__Gateway (bench/micro.sh starts a private one).
//   Micro.dll [BenchmarkDotNet options, e.g. --filter *Routing*]   key lookup, routing decision, budget check
//   Micro.dll writer --rows N [--grow M]                            the usage writer, after growing usage_events to M rows
//   Micro.dll grow --rows M [--days D]                              only grows usage_events to M rows over D days (30; 0: today)
using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Diagnosers;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Running;
using BenchmarkDotNet.Toolchains.InProcess.Emit;
using Perfolizer.Horology;
using Micro;

if (args is ["grow", .. var growOptions])
    return await WriterHarness.GrowAsync(Option(growOptions, "--rows") ?? 10_000_000, (int)(Option(growOptions, "--days", allowZero: true) ?? 30));

if (args is ["writer", .. var options])
{
    var rows = Option(options, "--rows") ?? 500_000;
    return await WriterHarness.RunAsync(rows, Option(options, "--grow"));
}

// In-process and short (3 warm-up and 9 measured iterations of 0.25 s each): the whole suite takes about a minute, and the
// benchmarks share one set-up (a database, 10,000 keys), which a process per benchmark would repeat. On a machine shared with
// other load the mean wanders; the median and the minimum are the figures to read.
var config = DefaultConfig.Instance
    .AddJob(Job.Default.WithToolchain(InProcessEmitToolchain.Instance).WithLaunchCount(1).WithWarmupCount(3).WithIterationCount(9)
        .WithIterationTime(TimeInterval.FromMilliseconds(250)))
    .AddDiagnoser(MemoryDiagnoser.Default)
    .AddColumn(StatisticColumn.Median, StatisticColumn.Min)
    .WithOptions(ConfigOptions.JoinSummary);
var summaries = BenchmarkRunner.Run(typeof(KeyLookupBenchmarks).Assembly, config, args);
return summaries.Any(s => s.HasCriticalValidationErrors || s.Reports.Any(r => !r.Success)) ? 1 : 0;

static long? Option(string[] options, string name, bool allowZero = false)
{
    var at = Array.IndexOf(options, name);
    if (at < 0) return null;
    return at + 1 < options.Length && long.TryParse(options[at + 1], out var value) && (value > 0 || allowZero && value == 0)
        ? value
        : throw new ArgumentException($"{name} needs a {(allowZero ? "non-negative" : "positive")} number.");
}
