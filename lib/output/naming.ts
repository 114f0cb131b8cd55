// Image names as each consumer wants them. docker shows Docker Hub images in their "familiar" form
// (docker.io/library/alpine:latest is alpine:latest), containerd and OCI layouts want the full name or just the tag.
import { DOCKER_HUB, type Reference } from '../reference.ts';

/** Docker's familiar repository name: alpine, user/app, or host:port/path for other registries. */
export function familiarName(ref: Reference): string {
  if (ref.registry !== DOCKER_HUB) return `${ref.registry}/${ref.repository}`;
  return ref.repository.startsWith('library/') && ref.repository.split('/').length === 2
    ? ref.repository.slice('library/'.length)
    : ref.repository;
}

/** The RepoTag `docker load` should apply (alpine:latest), or undefined when the image was pulled by digest only:
 *  docker then loads it untagged rather than inventing a tag. */
export function repoTag(ref: Reference): string | undefined {
  return ref.tag ? `${familiarName(ref)}:${ref.tag}` : undefined;
}

/** The full name containerd (Docker 25+ image store) files the image under: docker.io/library/alpine:latest. */
export function fullTaggedName(ref: Reference): string | undefined {
  return ref.tag ? `${ref.registry}/${ref.repository}:${ref.tag}` : undefined;
}

export const REF_NAME_ANNOTATION = 'org.opencontainers.image.ref.name';
export const CONTAINERD_NAME_ANNOTATION = 'io.containerd.image.name';
