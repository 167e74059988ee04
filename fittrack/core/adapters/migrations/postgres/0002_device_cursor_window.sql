-- Which of the 63 sequences below last_sequence are held too (core.domain.sequences).
ALTER TABLE device_cursors ADD COLUMN held bigint NOT NULL DEFAULT 0;
