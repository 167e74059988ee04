-- Which of the 63 sequences below the highest are held too (fittrack.core.domain.sequences).

ALTER TABLE device_cursors ADD COLUMN held INTEGER NOT NULL DEFAULT 0;
