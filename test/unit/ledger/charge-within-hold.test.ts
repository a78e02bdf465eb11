// What a settle charges against its hold: rounded up, never below 0 nor above the hold, and the
// hold for a charge that is not a number (never a NaN into a lease's books or a bigint column).
import { describe, expect, it, vi } from 'vitest';
import { chargeWithinHold } from '../../../src/ledger/ledger.js';
import { log } from '../../../src/log.js';

const HOLD = { amountMicros: 1_000, requestId: 'req-1' };

describe('chargeWithinHold', () => {
  it('rounds a charge up to a whole micro-unit and keeps it within the hold', () => {
    expect(chargeWithinHold(HOLD, 12.01)).toBe(13);
    expect(chargeWithinHold(HOLD, 0)).toBe(0);
    expect(chargeWithinHold(HOLD, -5)).toBe(0);
    expect(chargeWithinHold(HOLD, 5_000)).toBe(1_000);
    expect(chargeWithinHold(HOLD, Number.POSITIVE_INFINITY)).toBe(1_000);
    expect(chargeWithinHold(HOLD, Number.NEGATIVE_INFINITY)).toBe(0);
  });

  it('charges the hold, and says so, for a charge that is not a number', () => {
    const error = vi.spyOn(log, 'error').mockImplementation(() => undefined);
    try {
      expect(chargeWithinHold(HOLD, Number.NaN)).toBe(1_000);
      expect(error).toHaveBeenCalledWith('ledger: a charge that is not a number; the hold is charged', { requestId: 'req-1', amountMicros: 1_000 });
    } finally {
      error.mockRestore();
    }
  });
});
