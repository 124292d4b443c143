import { describe, expect, it } from 'vitest';
import { DEFAULT_SAFESEARCH_TARGETS, SafeSearch } from './safesearch.js';

describe('SafeSearch', () => {
  const ss = new SafeSearch();

  it.each([
    ['www.google.com', 'forcesafesearch.google.com'],
    ['google.com', 'forcesafesearch.google.com'],
    ['www.google.de', 'forcesafesearch.google.com'],
    ['www.google.co.uk', 'forcesafesearch.google.com'],
    ['www.google.com.au', 'forcesafesearch.google.com'],
    ['google.cat', 'forcesafesearch.google.com'],
    ['www.youtube.com', 'restrict.youtube.com'],
    ['m.youtube.com', 'restrict.youtube.com'],
    ['youtubei.googleapis.com', 'restrict.youtube.com'],
    ['youtube.googleapis.com', 'restrict.youtube.com'],
    ['www.youtube-nocookie.com', 'restrict.youtube.com'],
    ['www.bing.com', 'strict.bing.com'],
    ['duckduckgo.com', 'safe.duckduckgo.com'],
    ['www.duckduckgo.com', 'safe.duckduckgo.com'],
    ['pixabay.com', 'safesearch.pixabay.com'],
    ['yandex.ru', 'familysearch.yandex.ru'],
  ])('rewrites %s to %s', (name, target) => {
    expect(ss.target(name)).toBe(target);
  });

  it.each([
    'mail.google.com',
    'maps.google.com',
    'forcesafesearch.google.com',
    'restrict.youtube.com',
    'music.youtube.com',
    'google.example.com',
    'googlevideo.com',
    'bing.net',
  ])('leaves %s alone', (name) => {
    expect(ss.target(name)).toBeUndefined();
  });

  it('uses the moderate YouTube endpoint when asked', () => {
    expect(ss.target('www.youtube.com', 'moderate')).toBe('restrictmoderate.youtube.com');
  });

  it('takes target overrides, e.g. a lab test host', () => {
    const lab = new SafeSearch({ google: 'SafeSearch.Lab.Test.', youtubeStrict: 'yt-safe.lab.test' });
    expect(lab.target('www.google.com')).toBe('safesearch.lab.test');
    expect(lab.target('www.youtube.com')).toBe('yt-safe.lab.test');
    expect(lab.target('www.bing.com')).toBe(DEFAULT_SAFESEARCH_TARGETS.bing);
    expect(lab.target('safesearch.lab.test')).toBeUndefined();
  });
});
