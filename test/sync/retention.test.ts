/** Retention decisions: what each rule keeps, as an admin reading restic's documentation expects. */
import t from 'tap';
import type { Snapshot } from '../../src/store/format/records.js';
import type { SnapshotRef } from '../../src/store/roles.js';
import { applyPolicy, DEFAULT_SERVICE_POLICY, parseDuration, UNLIMITED, type RetentionPolicy } from '../../src/sync/retention.js';

let serial = 0;
/** A snapshot at a local time (year, month 1–12, day, hour, minute). */
function snap(y: number, mo: number, d: number, h = 12, mi = 0, extra: Partial<Snapshot> = {}): SnapshotRef {
  const id = (serial++).toString(16).padStart(64, '0');
  const snapshot = {
    time: new Date(y, mo - 1, d, h, mi).toISOString(), host: 'nas', user: 'root', paths: ['/share'], tags: [], excludes: [],
    tree: Buffer.alloc(32), summary: {} as Snapshot['summary'], ...extra,
  } as Snapshot;
  return { id, snapshot };
}

const kept = (refs: SnapshotRef[], policy: RetentionPolicy) =>
  applyPolicy(refs, policy).flatMap((g) => g.decisions).filter((d) => d.keep).map((d) => refs.indexOf(d.ref)).sort((a, b) => a - b);

t.test('keep-last keeps the newest n, whatever their times', async (t) => {
  const refs = [snap(2026, 1, 1), snap(2026, 1, 1, 13), snap(2026, 1, 2), snap(2026, 1, 3)];
  t.same(kept(refs, { last: 2 }), [2, 3]);
  t.same(kept(refs, { last: 10 }), [0, 1, 2, 3]);
});

t.test('calendar rules keep the newest snapshot of each of the n most recent periods that have one', async (t) => {
  // Three a day on 1, 2 and 4 December (the 3rd has none).
  const refs = [1, 2, 4].flatMap((d) => [8, 12, 18].map((h) => snap(2026, 12, d, h)));
  t.same(kept(refs, { daily: 2 }), [5, 8], 'the 18:00 ones of the 4th and the 2nd: a day without snapshots does not count');
  t.same(kept(refs, { hourly: 4 }), [5, 6, 7, 8]);
  t.same(kept(refs, { daily: 1, hourly: 2 }), [7, 8], 'rules add up');
  t.same(kept(refs, { daily: UNLIMITED }), [2, 5, 8]);
});

t.test('weekly buckets are ISO weeks (Monday to Sunday); monthly and yearly by the calendar', async (t) => {
  // Sunday 29 Nov 2026 and Monday 30 Nov 2026 fall in different ISO weeks.
  const refs = [snap(2026, 11, 28), snap(2026, 11, 29), snap(2026, 11, 30), snap(2026, 12, 6)];
  t.same(kept(refs, { weekly: 5 }), [1, 3]);
  t.same(kept(refs, { monthly: 5 }), [2, 3], 'the newest of November is the 30th');
  // 1 Jan 2027 is a Friday: it belongs to ISO week 53 of 2026, with Monday 28 Dec.
  t.same(kept([snap(2026, 12, 28), snap(2027, 1, 1)], { weekly: 5 }), [1]);
  t.same(kept([snap(2025, 6, 1), snap(2026, 3, 1), snap(2026, 5, 1)], { yearly: 5 }), [0, 2]);
});

t.test('within keeps everything newer than the duration before the newest snapshot; tags keep what carries them', async (t) => {
  const refs = [snap(2026, 11, 1), snap(2026, 11, 20), snap(2026, 11, 28), snap(2026, 12, 1, 12, 0, { tags: ['keep'] }), snap(2026, 12, 2)];
  t.same(kept(refs, { within: '1w' }), [2, 3, 4]);
  t.same(kept(refs, { within: '1m' }), [1, 2, 3, 4]);
  t.same(kept(refs, { tags: ['keep'] }), [3]);
  const reasons = applyPolicy(refs, { within: '2d', tags: ['keep'], last: 1 })[0].decisions.map((d) => d.reasons);
  t.same(reasons, [['last', 'within 2d'], ['within 2d', 'tag keep'], [], [], []], 'each kept snapshot says which rules keep it');
});

t.test('snapshots are grouped by host and paths: each group keeps its own', async (t) => {
  const refs = [snap(2026, 12, 1), snap(2026, 12, 2), snap(2026, 12, 1, 12, 0, { host: 'other' }), snap(2026, 12, 2, 12, 0, { paths: ['/photos'] })];
  t.same(kept(refs, { last: 1 }), [1, 2, 3]);
  const groups = applyPolicy(refs, { last: 1 }).map((g) => `${g.host} ${g.paths!.join(',')}`).sort();
  t.same(groups, ['nas /photos', 'nas /share', 'other /share']);
  t.same(applyPolicy(refs, { last: 1 }, ['host']).find((g) => g.host === 'nas')!.decisions.filter((d) => d.keep).length, 1, 'grouped by host only, one survives per host');
});

t.test('the service default thins continuous capture like Time Machine', async (t) => {
  // One snapshot every 10 minutes for 60 days up to 2 December 2026 12:00.
  const refs: SnapshotRef[] = [];
  const end = new Date(2026, 11, 2, 12, 0).getTime();
  for (let time = end - 60 * 86_400_000; time <= end; time += 10 * 60_000) {
    const d = new Date(time);
    refs.push(snap(d.getFullYear(), d.getMonth() + 1, d.getDate(), d.getHours(), d.getMinutes()));
  }
  const decisions = applyPolicy(refs, DEFAULT_SERVICE_POLICY)[0].decisions;
  const keptTimes = decisions.filter((d) => d.keep).map((d) => new Date(d.ref.snapshot.time).getTime());
  const lastDay = keptTimes.filter((x) => x > end - 86_400_000);
  t.equal(lastDay.length, 6 * 24, 'every version of the last day');
  const week = keptTimes.filter((x) => x <= end - 86_400_000 && x > end - 7 * 86_400_000);
  t.ok(week.length >= 6 * 24 - 2 && week.length <= 6 * 24 + 1, `hourly for the rest of the week (${week.length})`);
  const older = keptTimes.filter((x) => x <= end - 8 * 86_400_000);
  t.ok(older.length <= 31 + 9, `then about daily (${older.length})`);
  t.ok(decisions.filter((d) => !d.keep).length > refs.length * 0.8, 'most of 60 days of 10-minute versions are forgotten');
});

t.test('bad policies are refused with a clear message', async (t) => {
  t.throws(() => parseDuration('7 days'), { code: 'USAGE', message: /not a duration/ });
  t.throws(() => parseDuration(''), { code: 'USAGE' });
  t.same(parseDuration('1y6m2w3d4h'), { years: 1, months: 6, days: 17, hours: 4 });
  t.throws(() => applyPolicy([], { daily: -2 }), { code: 'USAGE', message: /keep-daily/ });
  t.throws(() => applyPolicy([], { daily: 1.5 }), { code: 'USAGE' });
});
