using BenchmarkDotNet.Attributes;
using Gateway.Core.Budgets;
using Gateway.Core.Chat;
using Gateway.Core.Routing;
using Microsoft.Extensions.DependencyInjection;

namespace Micro;

/// <summary>
/// The budget check of a request from a key with a daily budget and a hard cap, as the chat endpoint runs it
/// (<see cref="RequestBudget.BudgetAsync"/>: prompt bound with the tokenizer, worst case over the candidate chain, a reservation
/// from the leased slice in memory), then settled with the real cost as the request's end does. The slice was leased in
/// setup: no database round trip is measured.
/// </summary>
public class BudgetBenchmarks
{
    // What a gpt-4o-mini answer of ~300 tokens to the benchmark prompt costs.
    private const decimal RealCost = 0.000195m;

    private HotPathFixture _fixture = null!;
    private RequestBudget _budget = null!;
    private RouteDecision _decision = null!;
    private DateOnly _day;

    [GlobalSetup]
    public async Task SetupAsync()
    {
        _fixture = await HotPathFixture.GetAsync();
        _budget = _fixture.Services.GetRequiredService<RequestBudget>();
        _decision = _fixture.Services.GetRequiredService<ChatRouter>().Route(_fixture.Key, _fixture.AutoRequest, HotPathFixture.Header).Decision!;
        _day = _fixture.Services.GetRequiredService<BudgetCalendar>().Today;
    }

    [Benchmark(Description = "budget: reserve (daily + hard cap) and settle")]
    public async Task<decimal?> ReserveAndSettle()
    {
        var budget = await _budget.BudgetAsync(_fixture.Key, _day, _fixture.AutoRequest, _decision, CancellationToken.None);
        budget.Reservation!.Settle(RealCost);
        return budget.Remaining;
    }
}
