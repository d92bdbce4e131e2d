<?php

namespace App\Jobs;

use Illuminate\Bus\Queueable;
use Illuminate\Contracts\Queue\ShouldQueue;
use Illuminate\Foundation\Bus\Dispatchable;
use Illuminate\Queue\InteractsWithQueue;
use Illuminate\Queue\SerializesModels;

/**
 * Works for $seconds, then appends one JSON line about this run to the Redis list
 * `runs` (under the app's key prefix), so a test can count every run of every job.
 */
class Work implements ShouldQueue
{
    use Dispatchable, InteractsWithQueue, Queueable, SerializesModels;

    /** Memory kept for the worker's lifetime, so `queue:work --memory` trips. */
    private static array $ballast = [];

    public function __construct(
        public float $seconds = 0.0,
        public string $tag = '',
        public int $ballastMb = 0,
        public bool $failFirst = false
    ) {
    }

    public function handle(): void
    {
        if ($this->failFirst && $this->job->attempts() === 1) {
            // released for a retry by `queue:work --tries=2 --backoff=S`: back via :delayed
            throw new \RuntimeException('the first attempt fails');
        }
        $started = microtime(true);
        // A loop, not one sleep(): the worker's async signals cut a sleep() short, and a
        // job must run its full time even while the worker is asked to stop.
        while (($left = $started + $this->seconds - microtime(true)) > 0) {
            usleep((int) (min($left, 0.05) * 1e6));
        }
        if ($this->ballastMb > 0) {
            self::$ballast[] = str_repeat('x', $this->ballastMb * 1024 * 1024);
        }
        app('redis')->connection()->rpush('runs', json_encode([
            'id' => $this->job->getJobId(),
            'queue' => $this->job->getQueue(),
            'attempts' => $this->job->attempts(),
            'started' => $started,
            'finished' => microtime(true),
            'pid' => getmypid(),
            'tag' => $this->tag,
            'class' => static::class,
        ]));
    }
}
