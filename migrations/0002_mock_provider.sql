-- The offline 'mock' provider and model exist in every install (demos, tests, benchmarks).
INSERT INTO providers (id, name, protocol, base_url)
VALUES ('00000000-0000-7000-8000-000000000001', 'mock', 'mock', 'mock://local')
ON CONFLICT (name) DO NOTHING;

INSERT INTO models (id, alias, provider_id, upstream_model, input_price_per_mtok, output_price_per_mtok,
                    cached_input_price_per_mtok, context_window)
SELECT '00000000-0000-7000-8000-000000000002', 'mock', p.id, 'mock-1', 1.00, 2.00, 0.50, 128000
FROM providers p WHERE p.name = 'mock'
ON CONFLICT (alias) DO NOTHING;
