-- Schema version 8: a job's trace context.
--
-- The W3C `traceparent` (version 00, 55 characters) its attempts' spans
-- descend from: the submitting request's, or the span of the job whose
-- attempt submitted it. NULL for most jobs (a NULL costs one byte a row).

ALTER TABLE jobs ADD COLUMN trace_parent TEXT;
