// The API client: Connect clients of StatsService and SettingsService over
// the page's session cookie, and the session's sign-in and sign-out. The
// page never keeps the API key: it goes once to POST /api/v1/session,
// which answers with an HttpOnly cookie.
import {
  create,
  fromBinary,
  toBinary,
  type DescMessage,
  type DescMethodUnary,
  type MessageInitShape,
  type MessageShape,
} from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { codeFromHttpStatus, errorFromJson } from "@connectrpc/connect/protocol-connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { SettingsService } from "./gen/heartlog/v1/settings_pb";
import { StatsService } from "./gen/heartlog/v1/stats_pb";

// Connect protocol, binary: smaller and faster to decode than JSON, and a
// content type (application/proto with Connect-Protocol-Version) that the
// server's CSRF rule for cookies accepts. The cookie is same-origin, which
// fetch sends by default.
const transport = createConnectTransport({ baseUrl: location.origin, useBinaryFormat: true });

export const stats: Client<typeof StatsService> = createClient(StatsService, transport);
export const settings: Client<typeof SettingsService> = createClient(SettingsService, transport);

// The calls boot.ts sent before this script ran, by method path and
// request bytes; dropEarly forgets those nobody took.
let sent = (globalThis as { heartlogEarly?: Map<string, Promise<Response>> }).heartlogEarly;

/**
 * early is the answer to the call boot.ts made with the same method and
 * request bytes, decoded as the client would; undefined if it made none
 * (the caller then calls the client). Each is taken once.
 */
export function early<I extends DescMessage, O extends DescMessage>(
  method: DescMethodUnary<I, O>,
  req: MessageInitShape<I>,
  signal: AbortSignal,
): Promise<MessageShape<O>> | undefined {
  if (!sent) return undefined;
  const key = `/${method.parent.typeName}/${method.name} ` + toBinary(method.input, create(method.input, req)).join(",");
  const res = sent.get(key);
  if (!res) return undefined;
  sent.delete(key);
  return res.then(async (r) => {
    if (signal.aborted) throw new ConnectError("the page cancelled the call", Code.Canceled);
    if (!r.ok) {
      const fallback = new ConnectError(`HTTP ${r.status}`, codeFromHttpStatus(r.status));
      let json: unknown;
      try {
        json = await r.json();
      } catch {
        throw fallback;
      }
      throw errorFromJson(json as Parameters<typeof errorFromJson>[0], r.headers, fallback);
    }
    return fromBinary(method.output, new Uint8Array(await r.arrayBuffer()));
  });
}

/** dropEarly forgets the calls boot.ts made that no load took. */
export function dropEarly(): void {
  sent = undefined;
}

/** isUnauthenticated says whether a call failed for want of a valid session. */
export function isUnauthenticated(e: unknown): boolean {
  return e instanceof ConnectError && e.code === Code.Unauthenticated;
}

/** isUnimplemented says whether the server has no such method (yet). */
export function isUnimplemented(e: unknown): boolean {
  return e instanceof ConnectError && e.code === Code.Unimplemented;
}

/** isAbort says whether a call failed because the page cancelled it. */
export function isAbort(e: unknown): boolean {
  return (e instanceof ConnectError && e.code === Code.Canceled) || (e instanceof DOMException && e.name === "AbortError");
}

/** errorText is the message to show for a failed call: the API's own text. */
export function errorText(e: unknown): string {
  if (e instanceof ConnectError) {
    if (e.rawMessage) return e.rawMessage;
    return e.code === Code.Unimplemented ? "this server does not offer it yet" : Code[e.code];
  }
  if (e instanceof Error) return e.message;
  return String(e);
}

/** SessionError is a refused sign-in, with the API's message. */
export class SessionError extends Error {}

async function sessionCall(method: "POST" | "DELETE", body?: unknown): Promise<Response> {
  const res = await fetch("/api/v1/session", {
    method,
    credentials: "same-origin",
    headers: body === undefined ? {} : { "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!res.ok) {
    let msg = `${res.status} ${res.statusText}`;
    try {
      const j = (await res.json()) as { error?: string };
      if (j.error) msg = j.error;
    } catch {
      // Not JSON: keep the status line.
    }
    throw new SessionError(msg);
  }
  return res;
}

/** signIn exchanges an API key for the session cookie; it returns the user's name. */
export async function signIn(apiKey: string): Promise<string> {
  const res = await sessionCall("POST", { api_key: apiKey });
  const j = (await res.json()) as { data?: { username?: string } };
  return j.data?.username ?? "";
}

/** signOut ends the session and expires its cookie. */
export async function signOut(): Promise<void> {
  await sessionCall("DELETE");
}
