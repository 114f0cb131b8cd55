// Where an image goes: chosen by the CLI, opened once the image is resolved (so a missing docker fails early).
import { openDockerLoad } from './docker-load.ts';
import { openOciLayout } from './oci-layout.ts';
import type { ImageSink, ResolvedImage } from './sink.ts';
import { openTarFile } from './tar-file.ts';

export type OutputSpec = { kind: 'docker' } | { kind: 'oci'; dir: string } | { kind: 'tar'; path: string };

export function openOutput(spec: OutputSpec, image: ResolvedImage): Promise<ImageSink> {
  switch (spec.kind) {
    case 'docker':
      return openDockerLoad(image);
    case 'oci':
      return openOciLayout(spec.dir, image);
    case 'tar':
      return openTarFile(spec.path, image);
  }
}
