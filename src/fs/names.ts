/**
 * Names shown in the mount. The FUSE binding passes names as UTF-8 strings, so
 * a stored name that is not valid UTF-8 is shown with each invalid byte as
 * `\xNN`; lookups map a shown name back to the stored bytes through the
 * folder's listing, never by decoding.
 */
const decoder = new TextDecoder('utf-8', { fatal: true });

export function shownName(raw: Buffer): string {
  try {
    return decoder.decode(raw);
  } catch {
    let out = '';
    let i = 0;
    while (i < raw.length) {
      const len = validSequenceLength(raw, i);
      if (len > 0) {
        out += raw.subarray(i, i + len).toString('utf8');
        i += len;
      } else {
        out += `\\x${raw[i].toString(16).toUpperCase().padStart(2, '0')}`;
        i++;
      }
    }
    return out;
  }
}

/** Length of the valid UTF-8 sequence starting at `i`, or 0. */
function validSequenceLength(b: Buffer, i: number): number {
  const c = b[i];
  const len = c < 0x80 ? 1 : c >= 0xc2 && c < 0xe0 ? 2 : c >= 0xe0 && c < 0xf0 ? 3 : c >= 0xf0 && c < 0xf5 ? 4 : 0;
  if (len === 0 || i + len > b.length) return 0;
  try {
    decoder.decode(b.subarray(i, i + len));
    return len;
  } catch {
    return 0;
  }
}
