// A real OpenID provider for tests/oidc: oauth2-mock-server on a loopback port (discovery,
// JWKS, authorize with PKCE, token), plus a small control server through which a test sets
// what the next ID tokens say or how they are spoiled.
//
// Prints one JSON line on stdout once both listen: {"issuer": "...", "control": "..."}.
//
// Control (JSON bodies):
//   POST /claims {"claims": {...}, "forge": null | "other-key" | "alg-none",
//                 "authorizeError": null | "access_denied", "tokenError": null | "invalid_grant"}
//     claims are merged into every ID token from now on (a null value removes the claim);
//     forge re-signs the ID token with a key the JWKS does not hold (same kid), or strips
//     its signature; authorizeError/tokenError make those endpoints fail.
//   POST /reset: back to unmodified tokens.
import { generateKeyPairSync, sign } from "node:crypto";
import { createServer } from "node:http";

import { OAuth2Server } from "oauth2-mock-server";

const host = "127.0.0.1";
const provider = new OAuth2Server();
await provider.issuer.keys.generate("RS256");
const stranger = generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey;

let control = {};

const b64url = (value) => Buffer.from(value).toString("base64url");

function forged(idToken, how) {
  const [header, payload] = idToken.split(".");
  const head = JSON.parse(Buffer.from(header, "base64url").toString());
  if (how === "alg-none") {
    return `${b64url(JSON.stringify({ ...head, alg: "none" }))}.${payload}.`;
  }
  const signature = sign("sha256", Buffer.from(`${header}.${payload}`), stranger);
  return `${header}.${payload}.${signature.toString("base64url")}`;
}

provider.service.on("beforeTokenSigning", (token) => {
  // The access token carries `amr`; the ID token (built second) does not.
  if ("amr" in token.payload) return;
  for (const [name, value] of Object.entries(control.claims ?? {})) {
    if (value === null) delete token.payload[name];
    else token.payload[name] = value;
  }
});

provider.service.on("beforeResponse", (response) => {
  if (control.tokenError) {
    response.statusCode = 400;
    response.body = { error: control.tokenError };
    return;
  }
  if (control.forge && response.body.id_token) {
    response.body.id_token = forged(response.body.id_token, control.forge);
  }
});

provider.service.on("beforeAuthorizeRedirect", (redirect) => {
  if (!control.authorizeError) return;
  redirect.url.searchParams.delete("code");
  redirect.url.searchParams.set("error", control.authorizeError);
});

await provider.start(0, host);
// The library names the issuer "localhost"; the loopback address it listens on is exact.
provider.issuer.url = `http://${host}:${provider.address().port}`;

const controlServer = createServer((req, res) => {
  let body = "";
  req.on("data", (chunk) => {
    body += chunk;
  });
  req.on("end", () => {
    if (req.method === "POST" && req.url === "/claims") {
      control = JSON.parse(body || "{}");
    } else if (req.method === "POST" && req.url === "/reset") {
      control = {};
    } else {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(204).end();
  });
});
controlServer.listen(0, host, () => {
  const { port } = controlServer.address();
  process.stdout.write(
    `${JSON.stringify({ issuer: provider.issuer.url, control: `http://${host}:${port}` })}\n`,
  );
});

const stop = async () => {
  controlServer.close();
  await provider.stop();
  process.exit(0);
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
