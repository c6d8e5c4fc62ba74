// Shared by the forms (browser) and the server's checks.
export const MIN_PASSWORD_LENGTH = 8;
export const MAX_PASSWORD_LENGTH = 200;
/** The longest address SMTP allows; also all of an email the forms ever echo back. */
export const MAX_EMAIL_LENGTH = 254;
