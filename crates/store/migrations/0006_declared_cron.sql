-- Rampart control-plane schema, version 6: scheduled jobs an app's manifest
-- declares. They follow the live release (replaced when another goes live)
-- and are not removed by hand; jobs added by hand are `added`.
ALTER TABLE cron_jobs ADD COLUMN source TEXT NOT NULL DEFAULT 'added'
    CHECK (source IN ('added', 'manifest'));
