import { describe, expect, it } from 'vitest';
import { CsvSyntaxError, parseCsv } from '../../src/data/csv.js';

describe('parseCsv', () => {
  it('splits plain rows and records each row’s line', () => {
    expect(parseCsv('a,b\nc,d\n')).toEqual([
      { line: 1, fields: ['a', 'b'] },
      { line: 2, fields: ['c', 'd'] },
    ]);
  });

  it('handles quotes, doubled quotes, commas and newlines inside quotes', () => {
    const rows = parseCsv('"x, y.jpg","say ""hi"""\n"two\nlines.jpg",z\nlast,row');
    expect(rows).toEqual([
      { line: 1, fields: ['x, y.jpg', 'say "hi"'] },
      { line: 2, fields: ['two\nlines.jpg', 'z'] },
      { line: 4, fields: ['last', 'row'] },
    ]);
  });

  it('accepts CRLF, a BOM, blank lines, empty fields and no final newline', () => {
    expect(parseCsv('\ufeffa,b\r\n\r\n,c\r\nd,')).toEqual([
      { line: 1, fields: ['a', 'b'] },
      { line: 3, fields: ['', 'c'] },
      { line: 4, fields: ['d', ''] },
    ]);
    expect(parseCsv('')).toEqual([]);
  });

  it('reports an unterminated quote at the line where the field starts', () => {
    const err = (() => {
      try {
        parseCsv('ok,1\n"open,2\nmore\n');
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(err).toBeInstanceOf(CsvSyntaxError);
    expect((err as CsvSyntaxError).line).toBe(2);
  });

  it('rejects stray quotes', () => {
    expect(() => parseCsv('a"b,c')).toThrow(CsvSyntaxError);
    expect(() => parseCsv('"a"b,c')).toThrow(/after a closing quote/);
  });
});
