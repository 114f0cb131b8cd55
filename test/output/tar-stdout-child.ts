// Child process for the `-o -` test: writes a fixture's tar to its stdout through openTarFile('-').
// Usage: node tar-stdout-child.ts JOB.json   (JOB: {image with manifest.body in base64, blobs})
import { readFile } from 'node:fs/promises';
import { SwarmpullError } from '../../lib/errors.ts';
import { openTarFile } from '../../lib/output/tar-file.ts';
import type { ResolvedImage } from '../../lib/output/sink.ts';
import type { Fixture } from './helpers.ts';
import { addAll } from './helpers.ts';

const jobFile = process.argv[2];
if (jobFile) {
  const job = JSON.parse(await readFile(jobFile, 'utf8')) as { image: ResolvedImage & { manifest: { body: string } }; blobs: Fixture['blobs'] };
  const image: ResolvedImage = { ...job.image, manifest: { ...job.image.manifest, body: Buffer.from(job.image.manifest.body, 'base64') } };
  try {
    const sink = await openTarFile('-', image);
    await addAll(sink, job.blobs);
    process.stderr.write(`${await sink.commit()}\n`);
  } catch (err) {
    // As the CLI reports errors: one line on stderr, the error's exit code.
    process.stderr.write(`error: ${(err as Error).message}\n`);
    process.exitCode = err instanceof SwarmpullError ? err.exitCode : 1;
  }
}
