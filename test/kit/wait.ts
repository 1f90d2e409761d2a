/** Polls `cond` until it holds or `ms` pass; tells which. */
export async function until(cond: () => boolean | Promise<boolean>, ms = 20_000, everyMs = 50): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await cond()) return true;
    await new Promise((r) => setTimeout(r, everyMs));
  }
  return false;
}
