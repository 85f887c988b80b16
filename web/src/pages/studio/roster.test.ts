import { describe, expect, it } from 'vitest';
import { parseSort } from './RosterPage';

describe('roster sort', () => {
  it('reads a known key and direction from the URL', () => {
    expect(parseSort('percent_complete desc')).toEqual({ key: 'percent_complete', desc: true });
    expect(parseSort('last_activity_time')).toEqual({ key: 'last_activity_time', desc: false });
  });

  it('falls back to names A–Z for anything else', () => {
    expect(parseSort(null)).toEqual({ key: 'display_name', desc: false });
    expect(parseSort('email desc; drop')).toEqual({ key: 'display_name', desc: false });
  });
});
