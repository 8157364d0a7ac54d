-- Conversations started per day (UTC), bot, channel, type and current status: what a
-- dashboard reads.
select
    {{ botpenguin_utc_date('created_at') }} as day,
    bot_id,
    channel,
    conversation_type,
    status,
    count(*) as conversations,
    count(contact_email) as with_email,
    count(contact_phone) as with_phone,
    count(agent_id) as assigned,
    sum(case when is_online then 1 else 0 end) as online
from {{ ref('botpenguin__conversations') }}
group by 1, 2, 3, 4, 5
