import { useEffect, useState } from "react";

const UNITS: Array<[Intl.RelativeTimeFormatUnit, number]> = [
  ["day", 86_400_000],
  ["hour", 3_600_000],
  ["minute", 60_000],
];

function describe(date: Date, now: number): string {
  const diff = date.getTime() - now;
  for (const [unit, ms] of UNITS) {
    if (Math.abs(diff) >= ms)
      return new Intl.RelativeTimeFormat("en", { numeric: "auto" }).format(Math.round(diff / ms), unit);
  }
  return "just now";
}

/**
 * "5 minutes ago", with the exact time in a tooltip. The server renders the
 * UTC timestamp; the browser swaps in the relative text after hydration, so
 * both renders match.
 */
export function RelativeTime({ date }: { date: string | Date }) {
  const value = new Date(date);
  const iso = value.toISOString();
  const [text, setText] = useState(() => `${iso.slice(0, 16).replace("T", " ")} UTC`);
  useEffect(() => {
    const update = () => setText(describe(value, Date.now()));
    update();
    const timer = setInterval(update, 30_000);
    return () => clearInterval(timer);
  }, [iso]); // eslint-disable-line react-hooks/exhaustive-deps
  return (
    <time dateTime={iso} title={value.toLocaleString()}>
      {text}
    </time>
  );
}
