-- When each admin app user last signed in, for the Users page (who still uses the app, whom to remove). Written at
-- sign-in only; Identity's own updates of a user leave it alone (AdminDbContext maps it as never updated by them).
ALTER TABLE admin_users ADD COLUMN last_sign_in_at timestamptz;
