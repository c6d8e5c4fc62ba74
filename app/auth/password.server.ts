/** Password hashing: argon2id with the library's defaults (OWASP's minimum: 19 MiB, 2 passes). */
import { hash, verify } from "@node-rs/argon2";

export { MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH } from "./limits";

export function hashPassword(password: string): Promise<string> {
  return hash(password);
}

// Checked against when the email is unknown, so a wrong email takes as long as a wrong password.
const UNKNOWN_USER_HASH =
  "$argon2id$v=19$m=19456,t=2,p=1$vfBOfQTKu884gDUYyBUJPA$8aTBfBmRnSd9oNlelPvaaYkvQozCJ5FDMmDPNsfSJ+4";

export async function verifyPassword(passwordHash: string | undefined, password: string): Promise<boolean> {
  const stored = passwordHash?.startsWith("$argon2") ? passwordHash : UNKNOWN_USER_HASH;
  try {
    const ok = await verify(stored, password);
    return ok && stored === passwordHash;
  } catch {
    return false;
  }
}
