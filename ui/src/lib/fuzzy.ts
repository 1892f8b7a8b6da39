// Fuzzy matching for the command palette: every word of the query must appear in the text as a
// subsequence (letters in order, gaps allowed), case-insensitively. A match scores higher when
// its letters are contiguous, start words, or start the text, so "flk" finds "flaky-hunt" and a
// whole id pasted in ranks its run first. Pure and bounded: it never allocates per character
// beyond the lower-cased strings, and a query longer than MAX_QUERY is cut (the palette's box
// takes any paste).

const MAX_QUERY = 200;
const WORD_START = /[\s\-_/.:·]/;

/** The score of one word in `text` (already lower-case), or -1 when it does not match. */
function word(w: string, text: string): number {
  // A substring match beats any scattered one.
  const at = text.indexOf(w);
  if (at >= 0) return 100 + w.length * 4 + (at === 0 ? 40 : WORD_START.test(text[at - 1]) ? 20 : 0);
  let score = 0, ti = 0, prev = -2;
  for (let wi = 0; wi < w.length; wi++) {
    const c = w[wi];
    let found = -1;
    for (; ti < text.length; ti++) if (text[ti] === c) { found = ti; ti++; break; }
    if (found < 0) return -1;
    score += found === prev + 1 ? 3 : 1;
    if (found === 0 || WORD_START.test(text[found - 1])) score += 2;
    prev = found;
  }
  return score;
}

/** Score of `query` against `text`: -1 when some word does not match, higher is better. */
export function fuzzy(query: string, text: string): number {
  const words = query.slice(0, MAX_QUERY).toLowerCase().split(/\s+/).filter(Boolean);
  if (!words.length) return 0;
  const t = text.toLowerCase();
  let total = 0;
  for (const w of words) {
    const s = word(w, t);
    if (s < 0) return -1;
    total += s;
  }
  return total;
}
