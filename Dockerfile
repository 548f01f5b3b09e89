# The gateway API. Build: docker build -t llm-gateway-api .   (compose.yaml does this for you)
FROM mcr.microsoft.com/dotnet/sdk:10.0.100 AS build
WORKDIR /src
COPY global.json Directory.Build.props Directory.Packages.props BannedSymbols.txt .editorconfig ./
COPY migrations/ migrations/
COPY Gateway.Core/ Gateway.Core/
COPY Gateway.Api/ Gateway.Api/
# ReadyToRun (precompiled): a fresh process serves sooner and spends less CPU compiling under its first load (bench/RESULTS.md).
RUN dotnet restore Gateway.Api/Gateway.Api.csproj --locked-mode -r linux-x64 -p:PublishReadyToRun=true \
 && dotnet publish Gateway.Api/Gateway.Api.csproj -c Release -r linux-x64 --self-contained false -p:PublishReadyToRun=true -o /app --no-restore

FROM mcr.microsoft.com/dotnet/aspnet:10.0.0
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
