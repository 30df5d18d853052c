// Picks the form of a pack operation that fits a target's schema, or says why none does.
import type { LoadedPack, LoadedPackOperation, LoadedVariant } from './load.js';
import type { TargetSchema } from './target-schema.js';

export type VariantChoice =
  | { ok: true; variant: LoadedVariant; index: number }
  | { ok: false; reason: string };

/**
 * The first variant whose requirements the schema meets; otherwise the reason, naming what each variant
 * lacks: "missing table kasms (Kasm 1.12+) or table sessions (the runbook's schema)".
 */
export function chooseVariant(
  op: Pick<LoadedPackOperation, 'variants'>,
  schema: TargetSchema,
): VariantChoice {
  const lacks: { missing: string; label: string | undefined }[] = [];
  for (const [index, variant] of op.variants.entries()) {
    const missing = variant.requires ? schema.missing(variant.requires) : [];
    if (missing.length === 0) return { ok: true, variant, index };
    lacks.push({ missing: missing.join(', '), label: variant.label });
  }
  // Every form lacks the same thing: say it once.
  const distinct = [...new Set(lacks.map((l) => l.missing))];
  if (distinct.length === 1) return { ok: false, reason: `missing ${distinct[0]}` };
  const reasons = lacks.map((l) => `${l.missing}${l.label ? ` (${l.label})` : ''}`);
  return { ok: false, reason: `missing ${reasons.join(' or ')}` };
}

export interface UnavailableOperation {
  operation: string;
  /** "lookup user" for a lookup, so people find it under the name they type. */
  shown: string;
  reason: string;
}

/** The pack's operations that cannot run on a target with this schema, each with the reason. */
export function unavailableOperations(pack: LoadedPack, schema: TargetSchema): UnavailableOperation[] {
  const out: UnavailableOperation[] = [];
  for (const op of pack.operations) {
    const choice = chooseVariant(op, schema);
    if (!choice.ok) {
      out.push({
        operation: op.def.name,
        shown: op.def.lookup ? `lookup ${op.def.lookup}` : op.def.name,
        reason: choice.reason,
      });
    }
  }
  return out;
}
