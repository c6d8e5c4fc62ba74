// Routes import the database through this .server module so it never
// reaches the browser bundle or Vite's client dependency scan.
export { db, getDatabase } from "../db";
