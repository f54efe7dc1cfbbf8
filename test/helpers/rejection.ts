import { expect } from 'chai';

/** Awaits `p`, expects it to reject with an instance of `type`, and returns that error. */
export async function rejectionOf<E extends Error>(p: Promise<unknown>, type: abstract new (...args: never[]) => E): Promise<E> {
  try {
    await p;
  } catch (e) {
    expect(e).to.be.instanceOf(type);
    return e as E;
  }
  throw new Error(`expected a rejection with ${type.name}`);
}
