/**
 * The preview origin template: `<scheme>://*.<domain>[:port]`, where `*` stands for a project's host label
 * (app/preview-token.server.ts). Development: `http://*.localhost:<preview port>` (browsers resolve every
 * `*.localhost` name to loopback). Production: PREVIEW_ORIGIN, e.g. `https://*.preview.example.com`, behind wildcard
 * DNS, a wildcard certificate and a reverse proxy that passes Host (decision 021). Kept free of app imports: the
 * preview server and the routes share it.
 */

export interface PreviewOriginTemplate {
  /** "http:" or "https:". */
  protocol: string;
  /** The domain under which each project has its label, lower case, no leading dot: "localhost", "preview.example.com". */
  domain: string;
  /** ":4001", or "" for the scheme's default port. */
  port: string;
}

/** Parses `http(s)://*.domain[:port]`; throws with a message naming what is wrong. */
export function parsePreviewOriginTemplate(template: string): PreviewOriginTemplate {
  const match = /^(https?):\/\/\*\.([a-z0-9.-]+?)(:\d{1,5})?\/?$/i.exec(template.trim());
  if (!match) {
    throw new Error(
      `"${template}" is not a wildcard origin such as https://*.preview.example.com (each project gets its own host name)`,
    );
  }
  const domain = match[2]!.toLowerCase();
  if (domain.split(".").some((part) => !/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/.test(part))) {
    throw new Error(`"${template}": "${domain}" is not a domain name`);
  }
  const port = match[3] ?? "";
  if (port && Number(port.slice(1)) > 65535) throw new Error(`"${template}": port out of range`);
  return { protocol: `${match[1]!.toLowerCase()}:`, domain, port };
}

/** The development template: every project under localhost, on the preview server's port. */
export function localPreviewOriginTemplate(port: number): PreviewOriginTemplate {
  return { protocol: "http:", domain: "localhost", port: `:${port}` };
}

/** The origin of one label, no trailing slash: `http://<label>.localhost:4001`. */
export function previewOriginOf(template: PreviewOriginTemplate, label: string): string {
  return `${template.protocol}//${label}.${template.domain}${template.port}`;
}

/** The template as a CSP source expression: `http://*.localhost:4001` (matches every project's origin). */
export function previewOriginSource(template: PreviewOriginTemplate): string {
  return `${template.protocol}//*.${template.domain}${template.port}`;
}

/**
 * The label a Host header names under the template's domain, or null: another domain, the bare domain, a nested
 * name (`a.b.localhost`), or no host at all. The port is not compared: behind a reverse proxy the Host may carry the
 * public port or none.
 */
export function labelOfHost(template: PreviewOriginTemplate, host: string | undefined): string | null {
  if (!host || host.length > 300) return null;
  const hostname = host.toLowerCase().replace(/:\d*$/, "").replace(/\.$/, "");
  const suffix = `.${template.domain}`;
  if (!hostname.endsWith(suffix)) return null;
  const label = hostname.slice(0, -suffix.length);
  return label && !label.includes(".") ? label : null;
}
