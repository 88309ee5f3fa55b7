// A small line chart on a canvas: time on x (a fixed window ending now), rates on y, one
// line per series, a legend. Enough for the overview's live charts, with no library to vendor.

const COLORS = { enqueued: "#3b82f6", completed: "#16a34a", failed: "#dc2626" };

function niceMax(v) {
  if (v <= 0) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function clock(ms) {
  const d = new Date(ms);
  return `${String(d.getHours()).padStart(2, "0")}:${String(d.getMinutes()).padStart(2, "0")}`;
}

// samples: [{t: ms, <series>: number, ...}], series: names to draw, windowMs: x span.
export function drawChart(canvas, samples, series, { windowMs, unit = "/s" }) {
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth || 320;
  const height = canvas.clientHeight || 140;
  if (canvas.width !== width * ratio || canvas.height !== height * ratio) {
    canvas.width = width * ratio;
    canvas.height = height * ratio;
  }
  const g = canvas.getContext("2d");
  g.setTransform(ratio, 0, 0, ratio, 0, 0);
  g.clearRect(0, 0, width, height);
  const left = 44;
  const right = width - 8;
  const top = 18;
  const bottom = height - 18;
  const now = Date.now();
  const t0 = now - windowMs;
  const shown = samples.filter((s) => s.t >= t0);
  const max = niceMax(Math.max(0, ...shown.flatMap((s) => series.map((k) => s[k] || 0))));
  const x = (t) => left + ((t - t0) / windowMs) * (right - left);
  const y = (v) => bottom - (v / max) * (bottom - top);

  g.font = "11px system-ui, sans-serif";
  g.fillStyle = "#6b7280";
  g.strokeStyle = "#e5e7eb";
  g.lineWidth = 1;
  for (const f of [0, 0.5, 1]) {
    const v = max * f;
    g.beginPath();
    g.moveTo(left, y(v));
    g.lineTo(right, y(v));
    g.stroke();
    g.textAlign = "right";
    g.fillText(`${+v.toFixed(2)}${f === 1 ? unit : ""}`, left - 4, y(v) + 4);
  }
  g.textAlign = "left";
  g.fillText(clock(t0), left, height - 4);
  g.textAlign = "right";
  g.fillText("now", right, height - 4);

  let legend = left;
  for (const name of series) {
    const color = COLORS[name] || "#111827";
    g.fillStyle = color;
    g.fillRect(legend, 4, 10, 3);
    g.textAlign = "left";
    g.fillText(name, legend + 14, 10);
    legend += 24 + g.measureText(name).width;
    if (shown.length < 2) continue;
    g.strokeStyle = color;
    g.lineWidth = 1.5;
    g.beginPath();
    shown.forEach((s, i) => {
      const px = x(s.t);
      const py = y(s[name] || 0);
      if (i === 0) g.moveTo(px, py);
      else g.lineTo(px, py);
    });
    g.stroke();
  }
}
