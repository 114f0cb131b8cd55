// `npm run completions`: write the completion scripts generated from the commander program, to commit them.
// test/cli/completion.test.ts fails when these files differ from what the program generates.
import { writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { buildProgram } from '../lib/cli.ts';
import { completionScript, type Shell } from '../lib/completion.ts';

/** The committed file of each shell, relative to this directory. */
export const COMPLETION_FILES: Record<Shell, string> = { bash: 'swarmpull.bash', zsh: '_swarmpull', fish: 'swarmpull.fish' };

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  for (const [shell, file] of Object.entries(COMPLETION_FILES) as [Shell, string][]) {
    const path = fileURLToPath(new URL(file, import.meta.url));
    await writeFile(path, completionScript(buildProgram(), shell));
    process.stdout.write(`wrote ${path}\n`);
  }
}
