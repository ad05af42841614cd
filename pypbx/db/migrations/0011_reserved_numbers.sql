-- 11: RESERVED for the E.164 numbers migration of issue 10 (another branch, h-numbers or so).
-- This empty placeholder only keeps migrations numbered 1..n on branch h-missed; delete it
-- when the real 0011 is merged.
SELECT 1;
