-- A second offline model, priced below 'mock', so a budget downgrade can be tried without any provider account.
INSERT INTO models (id, alias, provider_id, upstream_model, input_price_per_mtok, output_price_per_mtok,
                    cached_input_price_per_mtok, context_window)
SELECT '00000000-0000-7000-8000-000000000003', 'mock-mini', p.id, 'mock-mini-1', 0.10, 0.20, 0.05, 128000
FROM providers p WHERE p.name = 'mock'
ON CONFLICT (alias) DO NOTHING;
