import { expect } from 'chai';
import fc from 'fast-check';
import { didYouMean, editDistance } from '../../src/common/did-you-mean.js';

describe('did you mean', () => {
  it('counts a swap of neighbours as one edit', () => {
    expect(editDistance('targest', 'targets')).to.equal(1);
    expect(editDistance('stateDri', 'stateDir')).to.equal(1);
    expect(editDistance('', 'abc')).to.equal(3);
    expect(editDistance('kitten', 'sitting')).to.equal(3);
  });

  it('is a distance: zero only for equal words, symmetric, at most the longer length', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 12 }), fc.string({ maxLength: 12 }), (a, b) => {
        const d = editDistance(a, b);
        expect(d === 0).to.equal(a === b);
        expect(editDistance(b, a)).to.equal(d);
        expect(d).to.be.at.most(Math.max(a.length, b.length));
      }),
    );
  });

  it('finds a key with one letter dropped, added, changed or swapped among others', () => {
    const keys = ['stateDir', 'targets', 'logLevel', 'cloudUrl', 'proxy'];
    fc.assert(
      fc.property(fc.constantFrom(...keys), fc.nat(), fc.constantFrom('drop', 'add', 'change', 'swap'), (k, at, how) => {
        const i = at % (k.length - 1);
        const typo =
          how === 'drop' ? k.slice(0, i) + k.slice(i + 1)
          : how === 'add' ? k.slice(0, i) + 'q' + k.slice(i)
          : how === 'change' ? k.slice(0, i) + (k[i] === 'z' ? 'y' : 'z') + k.slice(i + 1)
          : k.slice(0, i) + k[i + 1] + k[i] + k.slice(i + 2);
        fc.pre(typo !== k);
        expect(didYouMean(typo, keys)).to.equal(k);
      }),
    );
  });

  it('prefers a key differing only in case, and suggests nothing for an unrelated word', () => {
    expect(didYouMean('STATEDIR', ['stateDirs', 'stateDir'])).to.equal('stateDir');
    expect(didYouMean('banana', ['stateDir', 'targets', 'logLevel'])).to.equal(undefined);
    // Short words: one edit at most, so "tls" does not become "url".
    expect(didYouMean('tls', ['url'])).to.equal(undefined);
    expect(didYouMean('tsl', ['tls'])).to.equal('tls');
  });
});
