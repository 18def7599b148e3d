// Runs once before all test files: creates the Unix test accounts (as root) so that parallel
// test files never race on useradd.
import { ensureTestUsers } from './privileged.js';

export default function setup(): void {
  ensureTestUsers();
}
