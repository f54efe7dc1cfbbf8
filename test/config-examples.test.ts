import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { CloudConfigSchema } from '../src/cloud/config.js';
import { ConnectorConfigSchema } from '../src/connector/config.js';
import { parseConfig } from '../src/common/config.js';

const root = fileURLToPath(new URL('../../', import.meta.url));

describe('shipped example configs', () => {
  it('config/cloud.example.json is valid', () => {
    const f = `${root}config/cloud.example.json`;
    expect(() => parseConfig(f, readFileSync(f, 'utf8'), CloudConfigSchema)).to.not.throw();
  });
  it('config/connector.example.json is valid', () => {
    const f = `${root}config/connector.example.json`;
    expect(() => parseConfig(f, readFileSync(f, 'utf8'), ConnectorConfigSchema)).to.not.throw();
  });
});
