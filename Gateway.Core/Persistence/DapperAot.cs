// Every Dapper call in this assembly is replaced at build time by code Dapper.AOT generates (interceptors), so the API host
// runs without Reflection.Emit: a requirement of Native AOT, and no per-query strategy to emit on the first request.
[module: Dapper.DapperAot]
// Value tuples bind by position, as vanilla Dapper binds them.
[module: Dapper.BindTupleByName(false)]
