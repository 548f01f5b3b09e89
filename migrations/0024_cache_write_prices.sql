-- Prompt-cache writes priced as what they cost. Anthropic bills a write to a 5-minute cache entry at 1.25x the input price and
-- one to a 1-hour entry at 2x (reads at 0.1x: the cached input price); OpenAI-compatible APIs that bill writes report them as
-- prompt_tokens_details.cache_write_tokens. Writes were priced as plain input, so spend was under-counted.

-- A model's two write prices (USD per million tokens). Existing models get what an unset price gets from now on: 1.25x and 2x
-- the input price, rounded up to the micro-dollar (never below what the provider bills).
ALTER TABLE models
    ADD COLUMN cache_write_price_per_mtok    numeric(18, 6) NOT NULL DEFAULT 0 CHECK (cache_write_price_per_mtok >= 0),
    ADD COLUMN cache_write_1h_price_per_mtok numeric(18, 6) NOT NULL DEFAULT 0 CHECK (cache_write_1h_price_per_mtok >= 0);
UPDATE models SET cache_write_price_per_mtok = ceil(input_price_per_mtok * 1.25 * 1000000) / 1000000,
                  cache_write_1h_price_per_mtok = input_price_per_mtok * 2;

-- A usage row's written tokens (cached_tokens stays the tokens read from the cache) and the write prices used, as a snapshot
-- like the other prices. Rows stored before keep 0 and null: their writes were counted as plain input.
ALTER TABLE usage_events
    ADD COLUMN cache_write_tokens            integer NOT NULL DEFAULT 0,
    ADD COLUMN cache_write_1h_tokens         integer NOT NULL DEFAULT 0,
    ADD COLUMN cache_write_price_per_mtok    numeric(18, 6),
    ADD COLUMN cache_write_1h_price_per_mtok numeric(18, 6);

-- The daily aggregates the reports and the FOCUS export read carry them too. An instance still on the previous version adds 0
-- here for its rows, so upgrade all instances together.
ALTER TABLE usage_daily
    ADD COLUMN cache_write_tokens    bigint NOT NULL DEFAULT 0,
    ADD COLUMN cache_write_1h_tokens bigint NOT NULL DEFAULT 0;
ALTER TABLE usage_daily_models
    ADD COLUMN cache_write_tokens    bigint NOT NULL DEFAULT 0,
    ADD COLUMN cache_write_1h_tokens bigint NOT NULL DEFAULT 0;
