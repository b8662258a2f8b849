import t from 'tap'
import { backoffDelay, createBackoff } from '../src/backoff.ts'

t.test('the ceiling doubles per attempt up to the cap, the delay is a random part of it', async (t) => {
  const top = { baseMs: 1000, capMs: 60_000, random: () => 0.999999 }
  t.same([0, 1, 2, 3, 4, 5, 6, 7, 100, 5000].map((n) => backoffDelay(n, top)),
    [999, 1999, 3999, 7999, 15999, 31999, 59999, 59999, 59999, 59999])
  t.equal(backoffDelay(3, { ...top, random: () => 0.5 }), 4000, 'full jitter: anywhere below the ceiling')
  t.equal(backoffDelay(3, { ...top, random: () => 0 }), 1, 'never zero: a zero period would stop reconnecting')
})

t.test('createBackoff counts attempts until reset', async (t) => {
  const backoff = createBackoff({ baseMs: 100, capMs: 1000, random: () => 0.5 })
  t.same([backoff.next(), backoff.next(), backoff.next(), backoff.next(), backoff.next()], [50, 100, 200, 400, 500])
  backoff.reset()
  t.equal(backoff.next(), 50)
})

t.test('the default jitter source stays within the ceiling', async (t) => {
  for (let i = 0; i < 200; i++) {
    const delay = backoffDelay(i % 8, { baseMs: 100, capMs: 5000 })
    t.ok(delay >= 1 && delay <= Math.min(5000, 100 * 2 ** (i % 8)))
  }
})
