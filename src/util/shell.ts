/** POSIX-shell quoting, so a command shown to the user (the report's Settings) can be pasted back as is. */
export function shellQuote(s: string): string {
  return /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/** A command line from its words, each quoted where the shell needs it. */
export function shellCommand(words: readonly string[]): string {
  return words.map(shellQuote).join(' ');
}
