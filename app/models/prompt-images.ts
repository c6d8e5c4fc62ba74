/** Shared by the prompt box and transcript (browser) and the image module (server): decision 036. */

/** What the file input offers; the server checks the bytes whatever the browser says. */
export const ACCEPTED_IMAGE_TYPES = "image/png,image/jpeg,image/webp,image/gif";

/** 1.5 MiB, 320 KiB, 900 bytes: sizes as the builder reads them. */
export function humanSize(bytes: number): string {
  if (bytes >= 1024 * 1024) return `${+(bytes / 1024 / 1024).toFixed(1)} MiB`;
  if (bytes >= 1024) return `${Math.round(bytes / 1024)} KiB`;
  return `${bytes} bytes`;
}

/** Where an image of a project is served (its owner only). */
export function imageHref(projectId: string, imageId: string): string {
  return `/projects/${projectId}/images/${imageId}`;
}
