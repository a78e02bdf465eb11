// Spend per UTC day as an SVG bar chart: one bar a day (missing days are zero), each with a
// tooltip title, the scale and the first and last day as text beside it, and the whole described
// in words for screen readers. The bars stretch to the width; the text does not.
import { count, credits } from './format';

export interface DayPoint {
  readonly day: string;
  readonly chargedMicros: number;
  readonly requests: number;
}

/** viewBox units per day and of the height: the SVG is stretched to its box (preserveAspectRatio none). */
const SLOT = 10;
const HEIGHT = 100;

export function SpendChart({ points }: { points: readonly DayPoint[] }) {
  const max = Math.max(0, ...points.map((p) => p.chargedMicros));
  const total = points.reduce((sum, p) => sum + p.chargedMicros, 0);
  const requests = points.reduce((sum, p) => sum + p.requests, 0);
  const first = points[0]?.day ?? '';
  const last = points[points.length - 1]?.day ?? '';
  const summary = `Spend per day from ${first} to ${last}: ${credits(total)} credits over ${count(requests)} ${requests === 1 ? 'request' : 'requests'}; the highest day ${credits(max)} credits.`;
  return (
    <figure class="chart">
      <div class="chart-scale" aria-hidden="true">
        <span>{credits(max)}</span>
        <span>0</span>
      </div>
      <svg viewBox={`0 0 ${points.length * SLOT} ${HEIGHT}`} preserveAspectRatio="none" role="img" aria-label={summary}>
        {points.map((p, i) => {
          const h = max === 0 ? 0 : Math.max(p.chargedMicros > 0 ? 1 : 0, (p.chargedMicros / max) * HEIGHT);
          return (
            <rect key={p.day} x={i * SLOT + 1.5} width={SLOT - 3} y={HEIGHT - h} height={h} class="bar">
              <title>{`${p.day}: ${credits(p.chargedMicros)} credits, ${count(p.requests)} requests`}</title>
            </rect>
          );
        })}
      </svg>
      <div class="chart-days" aria-hidden="true">
        <span>{first}</span>
        <span>{last}</span>
      </div>
      <figcaption>{summary}</figcaption>
    </figure>
  );
}
