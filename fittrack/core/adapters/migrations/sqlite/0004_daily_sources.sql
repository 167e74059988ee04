-- Each source's own figures of the day, for ViewMetric's breakdown: [[source, value, minutes], ...].

ALTER TABLE daily_values ADD COLUMN sources TEXT NOT NULL DEFAULT '[]';
