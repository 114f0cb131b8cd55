// WWW-Authenticate parser (RFC 9110 §11.6.1): challenges separated by commas, each a scheme followed by a
// token68 or by name=value parameters, values being tokens or quoted strings with backslash escapes.
// A plain scanner (no regular expression over the whole header) so hostile input cannot make it slow.
import { failure, quoted } from '../errors.ts';

export interface Challenge {
  /** lower-cased, e.g. 'bearer', 'basic' */
  scheme: string;
  /** parameter names lower-cased */
  params: Record<string, string>;
  token68?: string;
}

const MAX_HEADER = 16 * 1024;
const MAX_PARAMS = 64;
const TCHAR = /[!#$%&'*+\-.^_`|~0-9A-Za-z]/;

/** Parse a WWW-Authenticate value; throws a one-line error (exit 1) for anything malformed. */
export function parseWwwAuthenticate(header: string): Challenge[] {
  const bad = (why: string, at: number) => failure(`malformed WWW-Authenticate header from the registry: ${why} at character ${at}`);
  if (header.length > MAX_HEADER) throw bad('header too long', MAX_HEADER);
  let i = 0;
  const n = header.length;
  const skipSpace = () => {
    while (i < n && (header[i] === ' ' || header[i] === '\t')) i++;
  };
  const skipSeparators = () => {
    while (i < n && (header[i] === ' ' || header[i] === '\t' || header[i] === ',')) i++;
  };
  const token = (): string => {
    const s = i;
    while (i < n && TCHAR.test(header[i]!)) i++;
    return header.slice(s, i);
  };
  const quotedString = (): string => {
    const start = i++; // opening quote
    let out = '';
    while (i < n) {
      const c = header[i]!;
      if (c === '"') {
        i++;
        return out;
      }
      if (c === '\\') {
        if (i + 1 >= n) break;
        out += header[i + 1];
        i += 2;
        continue;
      }
      if ((c < ' ' && c !== '\t') || c === '\x7f') throw bad('control character in quoted string', i);
      out += c;
      i++;
    }
    throw bad('unterminated quoted string', start);
  };

  const challenges: Challenge[] = [];
  skipSeparators();
  while (i < n) {
    const schemeAt = i;
    const scheme = token();
    if (!scheme) throw bad('expected an authentication scheme', schemeAt);
    const challenge: Challenge = { scheme: scheme.toLowerCase(), params: {} };
    challenges.push(challenge);
    skipSpace();
    // token68 form, e.g. "Negotiate dXNlcjpwYXNz==": one run of token68 characters, then a comma or the end
    if (i > schemeAt + scheme.length) {
      const m = /^[A-Za-z0-9\-._~+/]+=*[ \t]*(?=,|$)/.exec(header.slice(i));
      if (m) {
        challenge.token68 = m[0].trimEnd();
        i += m[0].length;
        skipSeparators();
        continue;
      }
    }
    // auth-params: name = value, separated by commas, until a name that is not followed by '=' (a new scheme).
    // A Map, not the object: names such as "constructor" or "__proto__" must be plain names.
    const params = new Map<string, string>();
    for (;;) {
      skipSpace();
      if (i >= n) break;
      const afterComma = header[i] === ',';
      if (afterComma) {
        skipSeparators();
        if (i >= n) break;
      }
      const save = i;
      const name = token();
      if (!name) throw bad('expected a parameter name', i);
      skipSpace();
      if (header[i] !== '=') {
        if (!afterComma) throw bad('expected "=" after a parameter name', i);
        i = save; // a new challenge starts here
        break;
      }
      i++;
      skipSpace();
      let value: string;
      if (header[i] === '"') value = quotedString();
      else {
        value = token();
        if (!value) throw bad(`parameter ${quoted(name, 40)} has no value`, i);
      }
      const key = name.toLowerCase();
      if (params.has(key)) throw bad(`parameter ${quoted(key, 40)} given twice`, save);
      if (params.size >= MAX_PARAMS) throw bad('too many parameters', save);
      params.set(key, value);
      skipSpace();
      if (i < n && header[i] !== ',') throw bad('expected "," between parameters', i);
    }
    challenge.params = Object.fromEntries(params);
  }
  if (challenges.length === 0) throw bad('no challenge', 0);
  return challenges;
}
