/** quoteValue: client values in error messages, bounded and escaped. */
import { describe, expect, it } from 'vitest';
import { quoteValue, safeJson, truncateUtf16 } from '../../src/core/quote.js';

describe('quoteValue', () => {
  it.each([
    ['', '""'],
    ['alice', '"alice"'],
    ['a"b\\c', '"a\\"b\\\\c"'],
    ['é日本', '"é日本"'],
    ['x'.repeat(128), `"${'x'.repeat(128)}"`],
  ])('quotes %j unchanged apart from quoting', (value, quoted) => {
    expect(quoteValue(value)).toBe(quoted);
    expect(JSON.parse(quoteValue(value))).toBe(value);
  });

  it('cuts a long value and says how much is missing', () => {
    const quoted = quoteValue('a'.repeat(1000));
    expect(quoted).toBe(`"${'a'.repeat(128)}…(872 more)"`);
    expect(quoted.length).toBeLessThanOrEqual(150);
    expect(quoteValue('abcdef', 3)).toBe('"abc…(3 more)"');
  });

  it('never splits a surrogate pair', () => {
    const emoji = '😀'; // two UTF-16 code units
    for (let max = 1; max <= 9; max++) {
      const quoted = quoteValue(emoji.repeat(5), max);
      const text = JSON.parse(quoted) as string;
      expect(quoted).not.toMatch(/\\ud[89a-f]/i); // JSON.stringify escapes lone surrogates: none here
      const kept = text.split('…')[0] ?? '';
      expect(kept.length).toBeLessThanOrEqual(max);
      expect(kept).toBe(emoji.repeat(Math.floor(max / 2)));
    }
    expect(truncateUtf16(`a${emoji}`, 2)).toBe('a');
    expect(truncateUtf16(`a${emoji}`, 3)).toBe(`a${emoji}`);
  });

  it('escapes control characters, including those JSON.stringify leaves alone', () => {
    const nasty = 'a\nb\r\u0000\u001b[31mred\u007f\u009b2J\u2028\u202egnp.exe';
    const quoted = quoteValue(nasty);
    expect(quoted).toMatch(/^"[\x20-\x7e]*"$/);
    expect(JSON.parse(quoted)).toBe(nasty);
    expect(quoted).toContain('\\u001b');
    expect(quoted).toContain('\\u009b');
    expect(quoted).toContain('\\u202e');
  });

  it('escapes a lone surrogate rather than emitting invalid UTF-16', () => {
    expect(quoteValue('a\ud800b')).toBe('"a\\ud800b"');
  });
});

describe('safeJson', () => {
  it('is JSON.stringify for plain values', () => {
    const value = { a: 'x', n: 1, list: ['y', null] };
    expect(safeJson(value)).toBe(JSON.stringify(value));
  });
});
