// The one way history and alerts write a time: `2026-12-06 02:46 UTC`.

export function utcMinute(at: Date): string {
  return `${at.toISOString().slice(0, 16).replace('T', ' ')} UTC`;
}
