// How history, alerts, trends and digests write a time: the one time format (`2026-12-06 02:46 UTC`, or the
// configured display zone), kept under its old name for the modules that import it.
import { formatTime } from '../core/time-format.js';

export function utcMinute(at: Date): string {
  return formatTime(at);
}
