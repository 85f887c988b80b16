import { describe, expect, it } from 'vitest';
import { filterByResource } from './admin/AuditPage';
import { parseSort } from './studio/RosterPage';

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

describe('audit resource filter', () => {
  const events = [
    { id: '1', resource: 'users/AB-1', action: 'user.disable' },
    { id: '2', resource: 'courses/x', action: 'course.publish' },
    { id: '3', action: 'session.revoke' },
  ];

  it('keeps the events whose resource contains the text, case-insensitively', () => {
    expect(filterByResource(events, ' users/ab ').map((e) => e.id)).toEqual(['1']);
  });

  it('keeps everything for an empty filter', () => {
    expect(filterByResource(events, '  ')).toHaveLength(3);
  });
});
