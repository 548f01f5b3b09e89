using System.Diagnostics;
using System.Diagnostics.Metrics;
using Gateway.Core.Metering;

namespace Micro;

/// <summary>
/// What the usage writer reports of itself through the gateway's metrics (rows written, time per batch), so the harness sees
/// progress without querying the table it is measuring.
/// </summary>
internal sealed class FlushListener : IDisposable
{
    private const string RowsWritten = "gateway.metering.rows_written";
    private const string FlushDuration = "gateway.metering.flush.duration";

    private readonly MeterListener _listener = new();
    private readonly Lock _lock = new();
    private long _rows;
    private long _lastFlushAt;
    private long _batches;
    private double _batchSeconds;
    private double _maxBatchSeconds;

    /// <summary>Listens from now on; start it before the writer's metrics are created.</summary>
    public FlushListener()
    {
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (instrument.Meter.Name == GatewayMetrics.MeterName && instrument.Name is RowsWritten or FlushDuration)
                listener.EnableMeasurementEvents(instrument);
        };
        _listener.SetMeasurementEventCallback<long>((_, rows, _, _) =>
        {
            Volatile.Write(ref _lastFlushAt, Stopwatch.GetTimestamp());
            Interlocked.Add(ref _rows, rows);
        });
        _listener.SetMeasurementEventCallback<double>((_, seconds, _, _) =>
        {
            lock (_lock)
            {
                _batches++;
                _batchSeconds += seconds;
                _maxBatchSeconds = Math.Max(_maxBatchSeconds, seconds);
            }
        });
        _listener.Start();
    }

    public long Rows => Interlocked.Read(ref _rows);

    /// <summary>When the last batch was committed (a <see cref="Stopwatch"/> timestamp).</summary>
    public long LastFlushAt => Volatile.Read(ref _lastFlushAt);

    public long Batches
    {
        get { lock (_lock) return _batches; }
    }

    public double MeanBatchSeconds
    {
        get { lock (_lock) return _batches == 0 ? 0 : _batchSeconds / _batches; }
    }

    public double MaxBatchSeconds
    {
        get { lock (_lock) return _maxBatchSeconds; }
    }

    /// <summary>Forgets the batches so far (the rows stay counted).</summary>
    public void ResetBatches()
    {
        lock (_lock)
        {
            _batches = 0;
            _batchSeconds = 0;
            _maxBatchSeconds = 0;
        }
    }

    public void Dispose() => _listener.Dispose();
}
