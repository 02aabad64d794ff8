/** `nextbuy explain` as text: per model its score, then the customer's events that explain it, one per line. */
import type { CustomerExplanation, EventView } from '../coordinator/explain/index.js';

export function formatExplanation(e: CustomerExplanation): string {
  const lines = [`customer ${e.customerId} · ${e.account} · scored for ${e.date} (features before ${e.asOf}) · ${e.historyLength} events in the ${e.lookbackDays}-day lookback`];
  // A scored customer has some event before the as-of date; with none in the lookback, all of them are older.
  const none = `    (no events in the ${e.lookbackDays} days before ${e.asOf}: the customer's older events are outside the lookback, so the model sees none)`;
  for (const m of e.models) {
    lines.push('', `${m.model}  (${m.modelVersion})  product ${m.product}  score ${m.score.toFixed(4)}`);
    if (m.byAttention) {
      lines.push('  attended to most (attention weight):');
      lines.push(...m.byAttention.map((x) => eventLine(x, x.contribution.toFixed(3))));
    }
    if (m.architecture !== 'logistic') {
      lines.push('  raised the score most (gradient × input, on the logit):');
      lines.push(...(m.byGradient.length > 0 ? m.byGradient.map((x) => eventLine(x, signed(x.contribution))) : [none]));
    }
    if (m.byFeature && m.byFeature.length > 0) {
      lines.push('  aggregate features that raised the score most (weight × value, on the logit):');
      lines.push(...m.byFeature.map((f) => `    ${f.name.padEnd(28)}  ${(f.value === null ? 'never' : String(f.value)).padStart(10)}  ${signed(f.contribution).padStart(8)}`));
    }
  }
  return `${lines.join('\n')}\n`;
}

function eventLine(x: EventView, value: string): string {
  const what = [x.eventType, x.item !== null ? `item ${x.item}` : null, x.category !== null ? `category ${x.category}` : null].filter(Boolean).join('  ');
  return `    ${x.at.replace('T', ' ').replace('Z', '')}  ${what.padEnd(44)}  ${value.padStart(8)}`;
}

const signed = (v: number) => `${v >= 0 ? '+' : ''}${v.toFixed(3)}`;
