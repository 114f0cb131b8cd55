// Kept in step with package.json by the test suite (test/cli.test.ts); a bundled binary cannot read package.json.
export const VERSION = '0.1.0';
