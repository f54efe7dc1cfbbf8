import { expect } from 'chai';
import { chmodSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { gunzipSync } from 'node:zlib';
import { createLogger, RecentProblems } from '../../src/common/log.js';
import { REDACTED, redact, redactString, secrets } from '../../src/common/redact.js';
import { generateRsaKeyPair } from '../../src/common/pki.js';
import { buildSupportBundle } from '../../src/connector/support-bundle.js';
import { tempDir } from '../helpers/procs.js';
import { openCloudStore } from '../../src/cloud/state.js';
import { createPairingToken } from '../../src/cloud/pairing.js';
import { createApiKey } from '../../src/cloud/api-keys.js';
import { systemClock } from '../../src/common/clock.js';

function capture(): { stream: PassThrough; text: () => string } {
  const stream = new PassThrough();
  let out = '';
  stream.on('data', (d: Buffer) => (out += d.toString()));
  return { stream, text: () => out };
}

describe('redaction and logging', () => {
  it('a log file that cannot be written is said on stdout, and the other lines still go there; a missing directory is made', () => {
    const out = capture();
    const dir = tempDir('uemlink-log-');
    // A directory that cannot be made (a file stands in its place), as a read-only path would be.
    writeFileSync(join(dir, 'not-a-dir'), 'x');
    const path = join(dir, 'not-a-dir', 'uemlink.log');
    const logger = createLogger({ component: 'connector', level: 'info', stream: out.stream, file: { path } });
    logger.info('still logged');
    const lines = out.text().trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines[0]).to.include({ level: 'error', message: 'cannot write the log file: logging to stdout only', logFile: path });
    expect(lines[0]!.reason).to.match(/EEXIST|ENOTDIR/);
    expect(lines[1]).to.include({ message: 'still logged' });
    const made = join(dir, 'logs', 'uemlink.log');
    createLogger({ component: 'connector', level: 'info', stream: capture().stream, file: { path: made } });
    expect(statSync(made).isFile(), 'the log directory is made, as winston would').to.equal(true);
  });

  afterEach(() => secrets.clear());

  it('redacts values of secret-named keys at any depth, keeping the shape', () => {
    const r = redact({ auth: { type: 'basic', username: 'svc', password: 'hunter2hunter2' }, headers: { Authorization: 'Basic abc', cookie: 'sid=1' }, clientSecret: 'cs', tokenUrl: 'https://x/token' });
    expect(r).to.deep.equal({ auth: { type: 'basic', username: 'svc', password: REDACTED }, headers: { Authorization: REDACTED, cookie: REDACTED }, clientSecret: REDACTED, tokenUrl: 'https://x/token' });
  });

  it('keeps an object that appears twice (not a cycle), and cuts a real cycle', () => {
    const shared = { id: 'mt1', state: 'pending' };
    expect(redact({ a: [shared], b: [shared] })).to.deep.equal({ a: [shared], b: [shared] });
    const cyc: Record<string, unknown> = { name: 'x' };
    cyc.self = cyc;
    expect(redact(cyc)).to.deep.equal({ name: 'x', self: '[circular]' });
  });

  it('redacts header pairs whose name is sensitive', () => {
    expect(redact([['authorization', 'Bearer xyz'], ['accept', 'json']])).to.deep.equal([['authorization', REDACTED], ['accept', 'json']]);
  });

  it('scrubs registered secrets wherever they appear, even inside library error messages', () => {
    secrets.add('s3cr3t-value-42');
    const e = new Error('request failed: https://uem?key=s3cr3t-value-42 refused');
    expect(redact({ err: e })).to.deep.equal({ err: { name: 'Error', message: `request failed: https://uem?key=${REDACTED} refused` } });
  });

  it('scrubs shapes that are secrets whatever their key', () => {
    const token = 'ulpt1.aHR0cDovL3g.AbCdEfGhIjKl.' + 'a'.repeat(43);
    const s = redactString(`pair with ${token}; header Bearer abc.def.ghi; url https://user:pw123@host/x; q access_token=zzz&x=1`);
    expect(s).to.not.contain('a'.repeat(43)).and.not.contain('abc.def.ghi').and.not.contain('pw123').and.not.contain('zzz');
    const { privateKeyPem } = generateRsaKeyPair(2048);
    const out = redactString(`oops ${privateKeyPem} after`);
    expect(out).to.match(/^oops \[REDACTED PRIVATE KEY\]\s+after$/);
  });

  it('minting pairing tokens and API keys does not grow the secret registry; both are scrubbed by their shape', async () => {
    const store = openCloudStore(tempDir('redact-mint-'));
    const before = secrets.size;
    const minted: string[] = [];
    for (let i = 0; i < 20; i++) {
      minted.push((await createPairingToken(store, 'https://cloud.example', { tenant: 'acme' })).token);
      minted.push((await createApiKey(store, 'acme', undefined, systemClock)).key);
    }
    // Registered one by one, 10,000 bulk pairings left 30,000 strings that every log line was searched for.
    expect(secrets.size).to.equal(before);
    const text = redactString(`leaked: ${minted.join(' , ')}`);
    for (const t of minted) expect(text).to.not.contain(t.split('.').pop()!);
    expect(text).to.contain(`ulak1.${REDACTED}`).and.contain(`ulpt1.${REDACTED}`);
  });

  it('no secret reaches the log output on any path (message, meta, nested, errors)', () => {
    const c = capture();
    const log = createLogger({ component: 'test', stream: c.stream, level: 'debug' });
    const pw = 'Very-Secret-Password-1';
    secrets.add(pw);
    const { privateKeyPem } = generateRsaKeyPair(2048);
    log.info(`connecting with ${pw}`);
    log.warn('meta', { password: 'another-secret-xyz', nested: { deep: { apiKey: 'k-123456' } }, headers: [['cookie', 'sid=abcdef']] });
    log.error('failed', { err: new Error(`auth failed for ${pw}`), key: privateKeyPem });
    log.debug('token', { line: 'Authorization: Bearer eyJhbGciOi.eyJzdWIi.sig' });
    const out = c.text();
    expect(out.split('\n').filter(Boolean)).to.have.length(4);
    for (const s of [pw, 'another-secret-xyz', 'k-123456', 'sid=abcdef', 'PRIVATE KEY', 'eyJzdWIi']) expect(out, s).to.not.contain(s);
    for (const line of out.trim().split('\n')) expect(() => JSON.parse(line)).to.not.throw();
  });

  it('honours UEMLINK_LOG_LEVEL over the configured level', () => {
    const c = capture();
    process.env.UEMLINK_LOG_LEVEL = 'warn';
    try {
      const log = createLogger({ component: 't', stream: c.stream, level: 'debug' });
      log.info('hidden');
      log.warn('shown');
    } finally {
      delete process.env.UEMLINK_LOG_LEVEL;
    }
    expect(c.text()).to.contain('shown').and.not.contain('hidden');
  });

  it('a call below the level is dropped before any formatting; a level raised at run time applies at once', () => {
    const c = capture();
    const log = createLogger({ component: 't', stream: c.stream, level: 'warn' });
    let looked = 0;
    const meta = {
      get detail(): string {
        looked++;
        return 'x';
      },
    };
    log.debug('hidden', meta);
    log.info('hidden too', meta);
    expect(looked, 'redaction and JSON never looked at the meta of a dropped line').to.equal(0);
    log.level = 'debug';
    log.debug('now shown', meta);
    expect(looked).to.be.above(0);
    expect(c.text()).to.contain('now shown').and.not.contain('hidden');
  });

  it('keeps the last problems, redacted, for status pages', () => {
    const recent = new RecentProblems(3);
    const c = capture();
    const log = createLogger({ component: 't', stream: c.stream, recent });
    secrets.add('pw-that-leaks');
    for (let i = 0; i < 5; i++) log.warn(`problem ${i} pw-that-leaks`);
    log.info('not a problem');
    const list = recent.list();
    expect(list.map((e) => e.message)).to.deep.equal([`problem 2 ${REDACTED}`, `problem 3 ${REDACTED}`, `problem 4 ${REDACTED}`]);
  });
});

describe('redaction of URLs and encoded secrets (found in review)', () => {
  afterEach(() => secrets.clear());

  it('a URL password holding a raw "@", or with an empty user name, is redacted whole', () => {
    expect(redactString('dial via http://svc:Pr0xy@Pass@proxy.corp:3128 failed')).to.equal(`dial via http://svc:${REDACTED}@proxy.corp:3128 failed`);
    expect(redactString('HTTPS_PROXY=http://:hunter2@proxy.corp:3128')).to.equal(`HTTPS_PROXY=http://:${REDACTED}@proxy.corp:3128`);
    expect(redactString('see https://host:8443/path and mail a@b.example')).to.equal('see https://host:8443/path and mail a@b.example');
  });

  it('a registered secret is scrubbed in its percent-encoded and JSON-escaped forms too', () => {
    const s = 'Tr0ub4dor&"3\\x+y';
    secrets.add(s);
    expect(redactString(`GET /x?pw=${encodeURIComponent(s)}`)).to.not.contain(encodeURIComponent(s));
    expect(redactString(`body ${JSON.stringify({ p: s })}`)).to.not.contain(JSON.stringify(s).slice(1, -1));
    expect(redactString(`raw ${s}`)).to.equal(`raw ${REDACTED}`);
  });
});

describe('log file and support bundle (found in review)', () => {
  const sink = (): PassThrough => new PassThrough().resume();
  async function closeLogger(l: ReturnType<typeof createLogger>): Promise<void> {
    await new Promise<void>((r) => {
      l.on('finish', () => r());
      l.end();
    });
    await new Promise((r) => setTimeout(r, 100)); // the file transport's stream closes after 'finish'
  }

  it('logFile: a restart appends to the last run\'s log, and an existing file is made 0600', async () => {
    const file = join(tempDir(), 'connector.log');
    writeFileSync(file, '');
    chmodSync(file, 0o644);
    const a = createLogger({ component: 'connector', stream: sink(), file: { path: file } });
    a.error('first run: the crash we need to see');
    await closeLogger(a);
    expect((statSync(file).mode & 0o777).toString(8)).to.equal('600');
    const b = createLogger({ component: 'connector', stream: sink(), file: { path: file } });
    b.info('second run starting');
    await closeLogger(b);
    const text = readFileSync(file, 'utf8');
    expect(text).to.contain('second run');
    expect(text, "the first run's lines").to.contain('first run');
  });

  it('support bundle: a config that is not valid JSON is left out (a single-quoted secret was kept)', async () => {
    const cfg = join(tempDir(), 'connector.json');
    writeFileSync(cfg, `{\n  "stateDir": "./state",\n  "targets": [{ "id": "ws1", "baseUrl": "https://uem", "auth": { "type": "basic", "username": "svc",\n    "password": 'N3wUnregisteredPw' } }]\n}\n`);
    const bundle = gunzipSync(await buildSupportBundle({ configFile: cfg, status: { error: 'x' }, diagnosis: { error: 'y' } })).toString('latin1');
    expect(bundle).to.not.contain('N3wUnregisteredPw');
    expect(bundle).to.contain('is not valid JSON, so it is left out');
  });
});
