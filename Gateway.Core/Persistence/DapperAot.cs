// Every Dapper call in this assembly is replaced at build time by code Dapper.AOT generates (interceptors), so the API host
// runs without Reflection.Emit: a requirement of Native AOT, and no per-query strategy to emit on the first request.
[module: Dapper.DapperAot]
// Value tuples bind by position, as vanilla Dapper binds them.
[module: Dapper.BindTupleByName(false)]
// What keeps a call intercepted (Gateway.Tests/Persistence/DapperAotTests.cs checks that every call is):
// - the SQL and an args object passed directly, never a CommandDefinition; the CancellationToken is an args member, or the
//   args themselves when the SQL has no parameter (an args object holding only a token loses it);
// - args members typed without another generator's output (serialize to a string local first: this generator cannot see
//   the JSON source generator's contexts, and skips the call silently);
// - row types internal or public, never private; no value-tuple rows; no QueryMultiple.
