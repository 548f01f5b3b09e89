-- Who shares a key's cached answers. 'key' (the default, and every existing key's): the key's own entries only. 'tags':
-- the entries of the keys that also chose 'tags' and carry exactly the same set of tags (sharing one tag is not enough:
-- two teams that overlap only partly never see each other's answers). 'global': the entries of every key that chose
-- 'global'. A key never reads an entry written under another scope.
ALTER TABLE api_keys ADD COLUMN cache_scope text NOT NULL DEFAULT 'key' CHECK (cache_scope IN ('key', 'tags', 'global'));
-- 'tags' without tags would share with every other tagless 'tags' key: a global cache by accident.
ALTER TABLE api_keys ADD CONSTRAINT api_keys_cache_scope_needs_tags CHECK (cache_scope <> 'tags' OR cardinality(tags) > 0);

-- What an entry's reader must know once entries are shared: the alias whose candidate answered (a fallback's answer is
-- served only to keys allowed that fallback) and when it was stored (a key accepts no entry older than its own
-- cache_ttl_seconds, whoever wrote it). Defaults only for entries an instance from before this migration still writes
-- during a rolling upgrade; those are keyed the old way, and no newer instance ever looks them up.
ALTER TABLE response_cache ADD COLUMN served_alias text;
ALTER TABLE response_cache ADD COLUMN stored_at timestamptz NOT NULL DEFAULT now();
