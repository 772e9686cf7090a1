// Inline SVG drawings: the observed-vs-baseline rate plot and the event timeline strip.
import { s, shortTime } from "./dom.js";

const W = 760;
const PAD = { left: 44, right: 16, top: 14, bottom: 30 };
const MINUTE = 60_000;

function ms(iso) {
  return new Date(iso).getTime();
}

function domain(times) {
  let lo = Math.min(...times);
  let hi = Math.max(...times);
  if (!Number.isFinite(lo)) return [0, MINUTE];
  if (hi - lo < MINUTE) {
    lo -= MINUTE;
    hi += MINUTE;
  }
  return [lo, hi + MINUTE]; // a bucket covers its minute
}

function niceMax(value) {
  if (value <= 1) return 1;
  const pow = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 2.5, 5, 10]) if (step * pow >= value) return step * pow;
  return 10 * pow;
}

/**
 * Calls per minute: observed as bars, the learned baseline as a dashed line, and a red
 * marker over each minute that held an anomalous event.
 * rate: {observed: [[iso, count]], baseline: [[iso, perMinute]]}; anomalies: [iso].
 */
export function ratePlot(rate, anomalies = []) {
  const observed = (rate?.observed || []).map(([t, v]) => [ms(t), Number(v)]);
  const baseline = (rate?.baseline || []).map(([t, v]) => [ms(t), Number(v)]);
  const marks = anomalies.map(ms).filter(Number.isFinite);
  const H = 220;
  const svg = s("svg", {
    class: "rate-plot",
    viewBox: `0 0 ${W} ${H}`,
    role: "img",
    "aria-label": "calls per minute: observed against the learned baseline",
  });
  const [x0, x1] = domain([...observed, ...baseline].map(([t]) => t).concat(marks));
  const yMax = niceMax(Math.max(1, ...observed.map(([, v]) => v), ...baseline.map(([, v]) => v)) * 1.1);
  const plotW = W - PAD.left - PAD.right;
  const plotH = H - PAD.top - PAD.bottom;
  const x = (t) => PAD.left + ((t - x0) / (x1 - x0)) * plotW;
  const y = (v) => PAD.top + plotH - (v / yMax) * plotH;

  const axes = s("g", { class: "axes" });
  for (const v of [0, yMax / 2, yMax]) {
    axes.append(
      s("line", { class: "grid-line", x1: PAD.left, x2: W - PAD.right, y1: y(v), y2: y(v) }),
      s("text", { x: PAD.left - 6, y: y(v), "text-anchor": "end", "dominant-baseline": "middle" },
        Number.isInteger(v) ? String(v) : v.toFixed(1)),
    );
  }
  const ticks = 4;
  for (let i = 0; i <= ticks; i += 1) {
    const t = x0 + ((x1 - x0) * i) / ticks;
    axes.append(
      s("text", { x: x(t), y: H - 10, "text-anchor": i === 0 ? "start" : i === ticks ? "end" : "middle" },
        shortTime(new Date(t).toISOString())),
    );
  }
  svg.append(axes);

  const barW = Math.max(2, Math.min(18, (plotW * MINUTE) / (x1 - x0) - 1));
  const bars = s("g", { class: "observed", dataset: { series: "observed" } });
  for (const [t, v] of observed) {
    bars.append(
      s("rect", { x: x(t), y: y(v), width: barW, height: Math.max(0, y(0) - y(v)) },
        s("title", null, `${shortTime(new Date(t).toISOString())}Z: ${v} calls`)),
    );
  }
  svg.append(bars);

  if (baseline.length > 0) {
    const pts = baseline.length === 1
      ? [[x0, baseline[0][1]], [x1, baseline[0][1]]]
      : [...baseline.slice(0, -1), [baseline.at(-1)[0] + MINUTE, baseline.at(-1)[1]]];
    svg.append(
      s("polyline", {
        class: "baseline",
        dataset: { series: "baseline" },
        points: pts.map(([t, v]) => `${x(t).toFixed(1)},${y(v).toFixed(1)}`).join(" "),
      }, s("title", null, `baseline ${baseline[0][1]} calls/min`)),
    );
  }

  const anomalyMarks = s("g", { class: "anomaly-marks", dataset: { series: "anomalies" } });
  for (const t of marks) {
    const cx = x(Math.floor(t / MINUTE) * MINUTE) + barW / 2;
    anomalyMarks.append(
      s("line", { x1: cx, x2: cx, y1: PAD.top, y2: y(0) }),
      s("circle", { cx, cy: PAD.top + 5, r: 5 },
        s("title", null, `anomalous event at ${shortTime(new Date(t).toISOString())}Z`)),
    );
  }
  svg.append(anomalyMarks);

  const legend = s("g", { class: "legend", transform: `translate(${PAD.left + 8}, ${PAD.top + 4})` });
  legend.append(
    s("rect", { class: "legend-observed", x: 0, y: 0, width: 10, height: 10 }),
    s("text", { x: 14, y: 9 }, "observed calls/min"),
    s("line", { class: "legend-baseline", x1: 140, x2: 160, y1: 5, y2: 5 }),
    s("text", { x: 164, y: 9 }, "baseline"),
    s("circle", { class: "legend-anomaly", cx: 230, cy: 5, r: 4 }),
    s("text", { x: 238, y: 9 }, "anomaly"),
  );
  svg.append(legend);
  return svg;
}

/** One dot per event along time; anomalous ones large and red. events: [{time, anomalous}]. */
export function timelineStrip(events) {
  const H = 56;
  const times = events.map((e) => ms(e.time)).filter(Number.isFinite);
  const svg = s("svg", {
    class: "timeline-strip",
    viewBox: `0 0 ${W} ${H}`,
    role: "img",
    "aria-label": "recent events over time; anomalous events in red",
  });
  if (times.length === 0) return svg;
  let lo = Math.min(...times);
  let hi = Math.max(...times);
  if (hi === lo) {
    lo -= MINUTE;
    hi += MINUTE;
  }
  const x = (t) => PAD.left + ((t - lo) / (hi - lo)) * (W - PAD.left - PAD.right);
  svg.append(s("line", { class: "axis", x1: PAD.left, x2: W - PAD.right, y1: 24, y2: 24 }));
  const normal = s("g", { class: "events" });
  const flagged = s("g", { class: "anomalies" });
  for (const e of events) {
    const t = ms(e.time);
    if (!Number.isFinite(t)) continue;
    const dot = s("circle", {
      cx: x(t), cy: 24, r: e.anomalous ? 7 : 3.5,
      class: e.anomalous ? "anomalous" : "normal",
    }, s("title", null, `${shortTime(e.time)}Z ${e.action}${e.anomalous ? " — anomalous" : ""}`));
    (e.anomalous ? flagged : normal).append(dot);
  }
  svg.append(normal, flagged);
  svg.append(
    s("text", { x: PAD.left, y: H - 6, "text-anchor": "start" }, shortTime(new Date(lo).toISOString())),
    s("text", { x: W - PAD.right, y: H - 6, "text-anchor": "end" }, shortTime(new Date(hi).toISOString())),
  );
  return svg;
}
