# The gateway API. Build: docker build -t llm-gateway-api .   (compose.yaml does this for you)
# Two builds of one host: the default (the last stage, "readytorun") runs on the .NET runtime, precompiled; the "aot" stage
# is one native executable for memory-bound pods (docker build --target aot -t llm-gateway-api:aot .; README, "Native AOT").
FROM mcr.microsoft.com/dotnet/sdk:10.0.100 AS source
WORKDIR /src
COPY global.json Directory.Build.props Directory.Packages.props BannedSymbols.txt .editorconfig ./
COPY migrations/ migrations/
COPY Gateway.Core/ Gateway.Core/
COPY Gateway.Api/ Gateway.Api/

FROM source AS build
# ReadyToRun (precompiled): a fresh process serves sooner and spends less CPU compiling under its first load (bench/RESULTS.md).
RUN dotnet restore Gateway.Api/Gateway.Api.csproj --locked-mode -r linux-x64 -p:PublishReadyToRun=true \
 && dotnet publish Gateway.Api/Gateway.Api.csproj -c Release -r linux-x64 --self-contained false -p:PublishReadyToRun=true -o /app --no-restore

# Native AOT needs the platform linker (clang) and zlib. Its restore adds the AOT compiler package, which the committed lock
# files do not record, so it keeps a lock file of its own under obj/ (not locked mode), as the tests' and bench's publish do.
FROM mcr.microsoft.com/dotnet/sdk:10.0.100 AS aot-build
RUN apt-get update && apt-get install -y --no-install-recommends clang zlib1g-dev && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY --from=source /src ./
RUN dotnet publish Gateway.Api/Gateway.Api.csproj -c Release -r linux-x64 -p:PublishAot=true -p:NuGetLockFilePath=obj/aot.packages.lock.json -o /aot \
 && rm -f /aot/*.dbg /aot/*.pdb /aot/*.xml

# No .NET runtime in this image: the executable carries its own.
FROM mcr.microsoft.com/dotnet/runtime-deps:10.0.0 AS aot
WORKDIR /app
COPY --from=aot-build /aot .
# /data holds the Data Protection key ring that encrypts stored provider secrets: keep it on a volume.
RUN mkdir -p /data/keys && chown -R app:app /data
USER app
ENV ASPNETCORE_URLS=http://0.0.0.0:8080 \
    Gateway__DataProtectionKeysDirectory=/data/keys \
    Gateway__Metering__JournalDirectory=/data/usage-journal \
    Gateway__SeedFile=/config/gateway.json
EXPOSE 8080
HEALTHCHECK --interval=5s --timeout=5s --retries=12 CMD ["/app/Gateway.Api", "healthcheck"]
ENTRYPOINT ["/app/Gateway.Api"]

FROM mcr.microsoft.com/dotnet/aspnet:10.0.0 AS readytorun
WORKDIR /app
COPY --from=build /app .
# /data holds the Data Protection key ring that encrypts stored provider secrets: keep it on a volume.
RUN mkdir -p /data/keys && chown -R app:app /data
USER app
ENV ASPNETCORE_URLS=http://0.0.0.0:8080 \
    Gateway__DataProtectionKeysDirectory=/data/keys \
    Gateway__Metering__JournalDirectory=/data/usage-journal \
    Gateway__SeedFile=/config/gateway.json
EXPOSE 8080
HEALTHCHECK --interval=5s --timeout=5s --retries=12 CMD ["dotnet", "Gateway.Api.dll", "healthcheck"]
ENTRYPOINT ["dotnet", "Gateway.Api.dll"]
